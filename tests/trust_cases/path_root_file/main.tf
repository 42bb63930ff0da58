# file() with ${path.root} and with a bare relative path: Terraform resolves both from the
# working directory, the root module, which is this directory.
# Hand check: policies/ec2-trust.json allows Service ec2.amazonaws.com sts:AssumeRole: EC2 may
# assume both roles.
resource "aws_iam_role" "rooted" {
  assume_role_policy = file("${path.root}/policies/ec2-trust.json")
}

resource "aws_iam_role" "relative" {
  assume_role_policy = file("policies/ec2-trust.json")
}

resource "aws_iam_role_policy_attachment" "rooted" {
  role       = aws_iam_role.rooted.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy_attachment" "relative" {
  role       = aws_iam_role.relative.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "rooted" {
  role = aws_iam_role.rooted.name
}

resource "aws_iam_instance_profile" "relative" {
  role = aws_iam_role.relative.name
}
