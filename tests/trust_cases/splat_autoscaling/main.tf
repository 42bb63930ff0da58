# Shaped like older registry modules (autoscaling, cloudposse): splats, one(), element(concat()).
# Hand check: each document allows sts:AssumeRole to Service ec2.amazonaws.com, so EC2 may assume
# both roles; the profiles and attachments reach them through element(concat(x.*.name, [""]), 0)
# and x[count.index] / x[each.key].
data "aws_iam_policy_document" "ec2" {
  count = 1
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "asg" {
  count              = 1
  assume_role_policy = one(data.aws_iam_policy_document.ec2[*].json)
}

resource "aws_iam_role" "node" {
  for_each           = toset(["a"])
  assume_role_policy = join("", data.aws_iam_policy_document.ec2.*.json)
}

resource "aws_iam_instance_profile" "asg" {
  count = 1
  role  = element(concat(aws_iam_role.asg.*.name, [""]), 0)
}

resource "aws_iam_role_policy_attachment" "asg" {
  count      = 1
  role       = aws_iam_role.asg[count.index].name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  for_each = toset(["a"])
  role     = aws_iam_role.node[each.key].id
}

resource "aws_iam_role_policy" "node" {
  for_each = toset(["a"])
  role     = aws_iam_role.node[each.key].id
  policy   = "{}"
}
