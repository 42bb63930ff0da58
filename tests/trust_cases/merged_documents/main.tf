# source_policy_documents and override_policy_documents, merged as Terraform merges them: a
# later statement with the Sid of an earlier one takes its place.
# Hand check: "base" allows Service lambda.amazonaws.com under Sid "Trust". "ec2" takes base as
# its source and overrides Sid "Trust" with a statement for ec2.amazonaws.com: the merged policy
# has one statement, and EC2 may assume the role. "lambda_only" sources base and adds a statement
# with Sid "Extra" for ecs-tasks: EC2 is in neither, so EC2 may not assume it.
data "aws_iam_policy_document" "base" {
  statement {
    sid     = "Trust"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "ec2_override" {
  statement {
    sid     = "Trust"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "ec2" {
  source_policy_documents   = [data.aws_iam_policy_document.base.json]
  override_policy_documents = [data.aws_iam_policy_document.ec2_override.json]
}

data "aws_iam_policy_document" "lambda_only" {
  source_policy_documents = [data.aws_iam_policy_document.base.json]
  statement {
    sid     = "Extra"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ec2" {
  assume_role_policy = data.aws_iam_policy_document.ec2.json
  managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
}

resource "aws_iam_role" "lambda_only" {
  assume_role_policy  = data.aws_iam_policy_document.lambda_only.json
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
}

resource "aws_iam_instance_profile" "ec2" {
  role = aws_iam_role.ec2.name
}
