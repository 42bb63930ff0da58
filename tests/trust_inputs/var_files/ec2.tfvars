trusted_service = "ec2.amazonaws.com"
services = ["ec2.amazonaws.com", "ssm.amazonaws.com"]
