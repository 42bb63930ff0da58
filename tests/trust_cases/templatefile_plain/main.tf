resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = templatefile("${path.module}/trust.json.tpl", {})
}

resource "aws_iam_role_policy" "app" {
  role   = aws_iam_role.app.id
  policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "s3:ListAllMyBuckets", Resource = "*" }] })
}

resource "aws_iam_instance_profile" "app" {
  role = aws_iam_role.app.name
}
