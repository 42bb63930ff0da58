locals {
  enabled = module.this.enabled
  tags = {
    "kubernetes.io/cluster/${var.cluster_name}" = "owned"
  }

  workers_role_arn  = var.use_existing_aws_iam_instance_profile ? join("", data.aws_iam_instance_profile.default[*].role_arn) : join("", aws_iam_role.default[*].arn)
  workers_role_name = var.use_existing_aws_iam_instance_profile ? join("", data.aws_iam_instance_profile.default[*].role_name) : join("", aws_iam_role.default[*].name)

  userdata = templatefile("${path.module}/userdata.tpl", {
    cluster_endpoint                = var.cluster_endpoint
    certificate_authority_data      = var.cluster_certificate_authority_data
    cluster_name                    = var.cluster_name
    bootstrap_extra_args            = var.bootstrap_extra_args
    kubelet_extra_args              = var.kubelet_extra_args
    before_cluster_joining_userdata = var.before_cluster_joining_userdata
    after_cluster_joining_userdata  = var.after_cluster_joining_userdata
  })
}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_role" {
  count = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "default" {
  count              = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0
  name               = module.label.id
  assume_role_policy = join("", data.aws_iam_policy_document.assume_role[*].json)
  tags               = module.label.tags
}

resource "aws_iam_role_policy_attachment" "amazon_eks_worker_node_policy" {
  count      = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSWorkerNodePolicy"
  role       = join("", aws_iam_role.default[*].name)
}

resource "aws_iam_role_policy_attachment" "amazon_eks_cni_policy" {
  count      = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"
  role       = join("", aws_iam_role.default[*].name)
}

resource "aws_iam_role_policy_attachment" "amazon_ec2_container_registry_read_only" {
  count      = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
  role       = join("", aws_iam_role.default[*].name)
}

resource "aws_iam_role_policy_attachment" "existing_policies_attach_to_eks_workers_role" {
  count      = local.enabled && var.use_existing_aws_iam_instance_profile == false ? var.workers_role_policy_arns_count : 0
  policy_arn = var.workers_role_policy_arns[count.index]
  role       = join("", aws_iam_role.default[*].name)
}

resource "aws_iam_instance_profile" "default" {
  count = local.enabled && var.use_existing_aws_iam_instance_profile == false ? 1 : 0
  name  = module.label.id
  role  = join("", aws_iam_role.default[*].name)
}

data "aws_iam_instance_profile" "default" {
  count = local.enabled && var.use_existing_aws_iam_instance_profile ? 1 : 0
  name  = var.aws_iam_instance_profile_name
}
