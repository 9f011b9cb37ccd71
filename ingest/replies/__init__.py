"""Replies to the customer on the channel they wrote on: one sender per provider API (Twilio, Meta Graph,
Telegram, X, the chat webhook's callback) behind one protocol (sender.py), the limits each provider sets
on what it accepts (limits.py), and the provider's delivery statuses of what was sent (delivery_status.py)."""
