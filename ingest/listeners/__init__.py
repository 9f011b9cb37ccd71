"""What every listener shares: connection admission, accept errors, the descriptor budget, the HTTP server."""
