# The web role's profile and permissions live in another file of the module.
resource "aws_iam_instance_profile" "web" {
  role = aws_iam_role.web.name
}

resource "aws_iam_policy_attachment" "shared" {
  name       = "shared"
  roles      = ["web", aws_iam_role.batch.name]
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
