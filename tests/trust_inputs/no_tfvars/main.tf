variable "trusted_service" {}

variable "services" {
  type = list(string)
}

variable "max_session_hours" {
  type    = number
  default = 1
}

variable "allow" {
  type    = bool
  default = true
}

resource "aws_iam_role" "single" {
  name                 = "single"
  max_session_duration = var.max_session_hours * 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = var.trusted_service }
    }]
  })
}

data "aws_iam_policy_document" "many" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.services
    }
  }
}

resource "aws_iam_role" "many" {
  name               = "many"
  assume_role_policy = data.aws_iam_policy_document.many.json
}
