# Shaped like terraform-aws-modules/iam's iam-role: statements, principals and conditions made by
# dynamic blocks over variables.
# Hand check: var.trusted_role_services defaults to ["ec2.amazonaws.com"], so the dynamic
# statement makes one statement allowing sts:AssumeRole (and sts:TagSession, harmless) to
# Service ec2.amazonaws.com: EC2 may assume "this". "guarded" adds dynamic condition blocks over
# var.role_conditions, which has no default: whether its statement's conditions hold is unknown,
# and only that. The attachment uses for_each and [0]; the profile [0].
variable "trusted_role_services" {
  type    = list(string)
  default = ["ec2.amazonaws.com"]
}

variable "trusted_role_actions" {
  type    = list(string)
  default = ["sts:AssumeRole", "sts:TagSession"]
}

variable "role_conditions" {
  type = list(object({ test = string, variable = string, values = list(string) }))
}

data "aws_iam_policy_document" "this" {
  count = 1

  dynamic "statement" {
    for_each = length(var.trusted_role_services) > 0 ? [var.trusted_role_services] : []

    content {
      sid     = "TrustServices"
      effect  = "Allow"
      actions = var.trusted_role_actions

      dynamic "principals" {
        for_each = [statement.value]
        iterator = services
        content {
          type        = "Service"
          identifiers = services.value
        }
      }
    }
  }
}

data "aws_iam_policy_document" "guarded" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
    dynamic "condition" {
      for_each = var.role_conditions
      content {
        test     = condition.value.test
        variable = condition.value.variable
        values   = condition.value.values
      }
    }
  }
}

resource "aws_iam_role" "this" {
  count              = 1
  name               = "instance"
  assume_role_policy = data.aws_iam_policy_document.this[0].json
}

resource "aws_iam_role" "guarded" {
  name               = "guarded"
  assume_role_policy = data.aws_iam_policy_document.guarded.json
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each   = toset(["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"])
  role       = aws_iam_role.this[0].name
  policy_arn = each.value
}

resource "aws_iam_role_policy_attachment" "guarded" {
  role       = aws_iam_role.guarded.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "this" {
  count = 1
  role  = aws_iam_role.this[0].name
}

resource "aws_iam_instance_profile" "guarded" {
  role = aws_iam_role.guarded.name
}
