"""What learned models are measured against: closed-form rules and simple fair models."""
