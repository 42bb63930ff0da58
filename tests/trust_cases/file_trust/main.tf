resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = file("${path.module}/trust.json")

  inline_policy {
    name   = "read-buckets"
    policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "s3:ListAllMyBuckets", Resource = "*" }] })
  }
}

resource "aws_iam_instance_profile" "app" {
  role = aws_iam_role.app.id
}
