"""Mail as data (SMTP and IMAP share it): parse, text and HTML, bounces and other noise, the hand-off."""
