locals {
  enabled        = module.this.enabled
  instance_count = local.enabled ? 1 : 0
  volume_count   = var.ebs_volume_count > 0 && local.instance_count > 0 ? var.ebs_volume_count : 0
  # create an instance profile if the instance is enabled and we aren't given one to use
  instance_profile_count = local.enabled && var.instance_profile_enabled && var.instance_profile == "" ? 1 : 0
  instance_profile       = var.instance_profile_enabled && var.instance_profile != "" ? var.instance_profile : (var.instance_profile_enabled ? one(aws_iam_instance_profile.default[*].name) : "")
  security_group_enabled = local.enabled && var.security_group_enabled
  region                 = local.enabled ? coalesce(var.region, one(data.aws_region.default[*].name)) : ""
  root_iops              = contains(["io1", "io2", "gp3"], var.root_volume_type) ? var.root_iops : null
  ebs_iops               = contains(["io1", "io2", "gp3"], var.ebs_volume_type) ? var.ebs_iops : null
  root_throughput        = var.root_volume_type == "gp3" ? var.root_throughput : null
  ebs_throughput         = var.ebs_volume_type == "gp3" ? var.ebs_throughput : null
  availability_zone      = var.availability_zone != "" ? var.availability_zone : try(data.aws_subnet.default[0].availability_zone, null)
  ami                    = var.ami != "" ? var.ami : one(data.aws_ami.default[*].image_id)
  ami_owner              = var.ami != "" ? var.ami_owner : one(data.aws_ami.default[*].owner_id)
  root_volume_type       = var.root_volume_type != "" ? var.root_volume_type : one(data.aws_ami.info[*].root_device_type)

  region_domain  = local.region == "us-east-1" ? "compute-1.amazonaws.com" : "${local.region}.compute.amazonaws.com"
  eip_public_dns = var.associate_public_ip_address && var.assign_eip_address && local.enabled ? "ec2-${replace(one(aws_eip.default[*].public_ip), ".", "-")}.${local.region_domain}" : ""
  public_dns = (
    var.associate_public_ip_address && var.assign_eip_address && local.enabled ?
    local.eip_public_dns : one(aws_instance.default[*].public_dns)
  )
}

data "aws_caller_identity" "default" {
  count = local.enabled ? 1 : 0
}

data "aws_region" "default" {
  count = local.enabled ? 1 : 0
}

data "aws_partition" "default" {
  count = local.enabled ? 1 : 0
}

data "aws_iam_policy_document" "default" {
  count = local.enabled ? 1 : 0

  statement {
    sid = ""

    actions = [
      "sts:AssumeRole",
    ]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }

    effect = "Allow"
  }
}

data "aws_iam_instance_profile" "given" {
  count = local.enabled && var.instance_profile_enabled && var.instance_profile != "" ? 1 : 0
  name  = var.instance_profile
}

resource "aws_iam_instance_profile" "default" {
  count = var.instance_profile_enabled ? local.instance_profile_count : 0
  name  = module.this.id
  role  = one(aws_iam_role.default[*].name)

  tags = module.this.tags
}

resource "aws_iam_role" "default" {
  count                = local.enabled && var.instance_profile_enabled ? local.instance_profile_count : 0
  name                 = module.this.id
  path                 = "/"
  assume_role_policy   = one(data.aws_iam_policy_document.default[*].json)
  permissions_boundary = var.permissions_boundary_arn
  tags                 = module.this.tags
}
