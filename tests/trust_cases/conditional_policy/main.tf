# Whole-policy choices: a conditional, coalesce() and try() over a variable, each with a default
# that decides it, and one conditional on a variable with no default.
# Hand check: var.custom_trust defaults to null, so "picked" takes data.ec2 (EC2 allowed).
# var.assume_role_policy defaults to "", and coalesce() skips "" and null: "coalesced" takes
# data.ec2. var.policies has no key "app", so try() moves on to data.ec2: allowed. "either" uses
# var.for_lambda, which has no default: true gives data.lambda (EC2 not trusted), false gives
# data.ec2 (allowed). The two differ, so it is unknown and both are said.
variable "custom_trust" {
  type    = string
  default = null
}

variable "assume_role_policy" {
  type    = string
  default = ""
}

variable "policies" {
  type    = map(string)
  default = {}
}

variable "for_lambda" {
  type = bool
}

data "aws_iam_policy_document" "ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "picked" {
  assume_role_policy = var.custom_trust != null ? var.custom_trust : data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_role" "coalesced" {
  assume_role_policy = coalesce(var.assume_role_policy, data.aws_iam_policy_document.ec2.json)
}

resource "aws_iam_role" "tried" {
  assume_role_policy = try(var.policies["app"], data.aws_iam_policy_document.ec2.json)
}

resource "aws_iam_role" "either" {
  assume_role_policy = var.for_lambda ? data.aws_iam_policy_document.lambda.json : data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_policy_attachment" "all" {
  name       = "all"
  roles      = [aws_iam_role.picked.name, aws_iam_role.coalesced.name, aws_iam_role.tried.name, aws_iam_role.either.name]
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "picked" {
  role = aws_iam_role.picked.name
}

resource "aws_iam_instance_profile" "coalesced" {
  role = aws_iam_role.coalesced.name
}

resource "aws_iam_instance_profile" "tried" {
  role = aws_iam_role.tried.name
}
