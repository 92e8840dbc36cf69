"""The machine economy: payment channels and their vouchers."""
