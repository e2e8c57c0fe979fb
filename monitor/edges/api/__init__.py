"""HTTP and websocket edges: translate requests, delegate to the Monitor, shape answers."""
