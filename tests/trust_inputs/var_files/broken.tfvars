trusted_service = "ec2.amazonaws.com"
services = [
