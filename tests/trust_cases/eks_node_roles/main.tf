# Shaped like terraform-aws-modules/eks: a managed node group's role, an Auto Mode node role and
# Karpenter's node role. EKS (the node group, Auto Mode) and Karpenter make the instance profile
# from the role themselves, so no aws_iam_instance_profile is needed.
# Hand check: each trusts Service ec2.${dns_suffix} = ec2.amazonaws.com in partition aws, with
# sts:AssumeRole: EC2 may assume all three; each has a policy attachment (for_each, [0]).
data "aws_partition" "current" {}

data "aws_iam_policy_document" "ec2" {
  statement {
    sid     = "EKSNodeAssumeRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

variable "access_entry_type" {
  type    = string
  default = "EC2_LINUX"
}

resource "aws_iam_role" "node_group" {
  count              = 1
  assume_role_policy = data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_role" "auto_mode" {
  assume_role_policy = data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_role" "karpenter_node" {
  count              = 1
  assume_role_policy = data.aws_iam_policy_document.ec2.json
}

resource "aws_iam_role_policy_attachment" "node_group" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"])
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
  role       = aws_iam_role.node_group[0].name
}

resource "aws_iam_role_policy_attachment" "auto_mode" {
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSWorkerNodeMinimalPolicy"
  role       = aws_iam_role.auto_mode.name
}

resource "aws_iam_role_policy_attachment" "karpenter_node" {
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSWorkerNodePolicy"
  role       = aws_iam_role.karpenter_node[0].name
}

resource "aws_eks_node_group" "this" {
  cluster_name  = "demo"
  node_role_arn = aws_iam_role.node_group[0].arn
  subnet_ids    = ["subnet-1"]
  scaling_config {
    desired_size = 1
    max_size     = 1
    min_size     = 1
  }
}

resource "aws_eks_cluster" "this" {
  name     = "demo"
  role_arn = "arn:aws:iam::111122223333:role/cluster"
  compute_config {
    enabled       = true
    node_pools    = ["general-purpose"]
    node_role_arn = aws_iam_role.auto_mode.arn
  }
  vpc_config {
    subnet_ids = ["subnet-1"]
  }
}

resource "aws_eks_access_entry" "karpenter_node" {
  cluster_name  = "demo"
  principal_arn = aws_iam_role.karpenter_node[0].arn
  type          = var.access_entry_type
}
