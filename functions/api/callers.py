"""Who sends a request: the owner and scopes API Gateway's JWT authorizer verified, never the body."""

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from imgflow.models import MAX_OWNER_LENGTH
from imgflow.uploads import Caller


class UnauthorizedError(Exception):
    """No verified token reached the function: API Gateway's authorizer is missing from the route."""


def caller_of(event: APIGatewayProxyEventV2) -> Caller:
    authorizer = event.request_context.authorizer
    claims = authorizer.jwt_claim
    owner = claims.get("sub")
    if not owner:
        raise UnauthorizedError("this route needs a token: send Authorization: Bearer <token>")
    if len(owner) > MAX_OWNER_LENGTH:
        # Owners are stored on every job and in keys that DynamoDB bounds; no issuer makes a `sub` this long.
        raise UnauthorizedError(f"the token's sub is longer than {MAX_OWNER_LENGTH} characters")
    # API Gateway passes the scopes when the route asks for some; else they are in the `scope` claim.
    scopes = authorizer.jwt_scopes or str(claims.get("scope", claims.get("scp", ""))).strip("[]").split()
    return Caller(owner=str(owner), scopes=frozenset(scopes))
