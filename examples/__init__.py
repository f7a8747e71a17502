"""Complete programs using wampweb; each has ``main(reactor, ...)``."""
