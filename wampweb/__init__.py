"""wampweb: WAMP inside a web application."""
