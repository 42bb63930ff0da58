# Shaped like terraform-aws-modules/ec2-instance: the role, its document, profile and attachments
# all carry count, so every reference is indexed.
# Hand check: the document's one statement allows sts:AssumeRole to Service ec2.amazonaws.com, so
# EC2 may assume the role; the profile and the attachment name aws_iam_role.this[0].
variable "create_iam_instance_profile" {
  type    = bool
  default = true
}

data "aws_iam_policy_document" "assume_role_policy" {
  count = var.create_iam_instance_profile ? 1 : 0

  statement {
    sid     = "EC2AssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count              = var.create_iam_instance_profile ? 1 : 0
  name_prefix        = "instance-"
  assume_role_policy = data.aws_iam_policy_document.assume_role_policy[0].json
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each   = { ssm = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" }
  policy_arn = each.value
  role       = aws_iam_role.this[0].name
}

resource "aws_iam_instance_profile" "this" {
  count = var.create_iam_instance_profile ? 1 : 0
  role  = aws_iam_role.this[0].name
}
