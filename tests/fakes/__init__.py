"""Fakes of the outside services imgflow talks to, served over HTTP so the real SDKs talk to them."""
