resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = templatefile("${path.module}/trust.json.tpl", { service = "ec2.amazonaws.com" })
}

resource "aws_iam_instance_profile" "app" {
  name = "app"
  role = aws_iam_role.app.name
}

resource "aws_iam_role_policy_attachment" "app" {
  role       = aws_iam_role.app.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
