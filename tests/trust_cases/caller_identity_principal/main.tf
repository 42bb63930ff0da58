# Shaped like hashicorp vault/nomad cluster modules: one statement trusts EC2, another the
# account's root through data.aws_caller_identity.
# Hand check: statement 1 allows sts:AssumeRole to Service ec2.amazonaws.com, so EC2 may assume
# the role whatever the account id is; an AWS principal never names the EC2 service, so the
# unknown account only leaves that principal unknown.
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
  statement {
    sid     = "AccountRoot"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_iam_role" "server" {
  name_prefix        = "vault-"
  description        = "Vault server instances"
  path               = "/vault/"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_instance_profile" "server" {
  role = aws_iam_role.server.name
}

resource "aws_iam_role_policy" "server" {
  role   = aws_iam_role.server.id
  policy = "{}"
}
