"""What operators run beside the workers: logging, metrics, Flower and the webhook receiver."""
