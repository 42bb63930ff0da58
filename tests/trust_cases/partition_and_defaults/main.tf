# Shaped like terraform-aws-modules/iam and eks node groups: the service is built from the
# partition's dns_suffix, the identifiers come from a variable default and a local.
# Hand check: in partition aws, "ec2.${dns_suffix}" is ec2.amazonaws.com; the statement allows it
# sts:AssumeRole, so EC2 may assume "node". "worker" lists var.trusted_services, whose default
# is ["ec2.amazonaws.com"], so EC2 may assume it too. "custom" needs var.extra_services, which
# has no default: unknown, and the reason names that variable.
data "aws_partition" "current" {}

variable "trusted_services" {
  type    = list(string)
  default = ["ec2.amazonaws.com"]
}

variable "extra_services" {
  type = list(string)
}

locals {
  assume_action = "sts:AssumeRole"
}

data "aws_iam_policy_document" "node" {
  statement {
    actions = [local.assume_action]
    principals {
      type        = "Service"
      identifiers = ["ec2.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.trusted_services
    }
  }
}

data "aws_iam_policy_document" "custom" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.extra_services
    }
  }
}

resource "aws_iam_role" "node" {
  assume_role_policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role" "worker" {
  assume_role_policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role" "custom" {
  assume_role_policy = data.aws_iam_policy_document.custom.json
}

resource "aws_iam_instance_profile" "all" {
  for_each = toset(["node", "worker", "custom"])
  role     = aws_iam_role.node.name
}
