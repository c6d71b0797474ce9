"""Consent: the signed consent log, the purpose policy and the gate in front of every model."""
