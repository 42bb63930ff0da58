trusted_service = var.other
