trusted_service = "codebuild.amazonaws.com"
