# Read first: overridden by every file after it.
trusted_service = "lambda.amazonaws.com"
