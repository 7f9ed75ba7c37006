"""A bucket's CORS rules as S3 applies them, read from the GetBucketCors XML."""

from __future__ import annotations

from imgflow_local import s3_cors

RULES = b"""<?xml version="1.0" encoding="UTF-8"?>
<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <CORSRule>
    <AllowedMethod>POST</AllowedMethod>
    <AllowedOrigin>https://app.example.com</AllowedOrigin>
    <AllowedOrigin>http://*.localhost:3000</AllowedOrigin>
    <AllowedHeader>*</AllowedHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
  <CORSRule>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedOrigin>https://app.example.com</AllowedOrigin>
    <AllowedHeader>Range</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
  </CORSRule>
</CORSConfiguration>"""


def test_the_rules_are_read_with_every_element() -> None:
    post, get = s3_cors.parse_rules(RULES)
    assert post.methods == ("POST",)
    assert post.origins == ("https://app.example.com", "http://*.localhost:3000")
    assert (post.headers, post.max_age) == (("*",), 3000)
    assert (get.methods, get.expose, get.max_age) == (("GET", "HEAD"), ("ETag",), None)


def test_the_first_rule_allowing_origin_method_and_headers_applies() -> None:
    rules = s3_cors.parse_rules(RULES)
    assert s3_cors.first_match(rules, "https://app.example.com", "GET", ["range"]) == rules[1]
    assert s3_cors.first_match(rules, "http://demo.localhost:3000", "POST", ["content-type"]) == rules[0]


def test_another_origin_method_or_header_is_not_allowed() -> None:
    rules = s3_cors.parse_rules(RULES)
    assert s3_cors.first_match(rules, "https://evil.example.net", "POST") is None
    assert s3_cors.first_match(rules, "https://app.example.com", "PUT") is None
    assert s3_cors.first_match(rules, "https://app.example.com", "GET", ["x-amz-target"]) is None


def test_a_preflight_answer_names_the_origin_never_a_wildcard() -> None:
    rule = s3_cors.parse_rules(RULES)[0]
    headers = dict(s3_cors.preflight_headers(rule, "https://app.example.com", ["content-type"]))
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    assert headers["Access-Control-Max-Age"] == "3000"


def test_a_malformed_document_has_no_rules() -> None:
    assert s3_cors.parse_rules(b"<not xml") == []
    refused = s3_cors.preflight_refused("PUT", "OBJECT", cors_enabled=False)
    assert (refused.code, refused.status) == ("AccessForbidden", 403)
