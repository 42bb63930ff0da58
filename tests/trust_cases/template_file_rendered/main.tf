# The older template provider: data "template_file" renders a file with vars.
# Hand check: trust.json.tpl puts ${service} in Principal.Service and ${account} in an
# aws:SourceAccount condition. vars gives service = "ec2.amazonaws.com" and account =
# var.account_id, which has no default: EC2 is named, and only the condition is unknown.
variable "account_id" {
  type = string
}

data "template_file" "trust" {
  template = file("${path.module}/trust.json.tpl")
  vars = {
    service = "ec2.amazonaws.com"
    account = var.account_id
  }
}

resource "aws_iam_role" "app" {
  assume_role_policy = data.template_file.trust.rendered
}

resource "aws_iam_role_policy_attachment" "app" {
  role       = aws_iam_role.app.id
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "app" {
  role = aws_iam_role.app.name
}
