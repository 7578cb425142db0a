"""Account services: users and roles, demo users, API tokens, socket tickets, lockouts."""

from apps.accounts.services.demo import (
    DEMO_PASSWORD,
    DemoLogin,
    DemoUsersRefused,
    demo_users_ensure,
    demo_users_refusal,
    is_loopback_host,
)
from apps.accounts.services.lockout import lockout_remaining_s
from apps.accounts.services.tickets import TicketGrant, ws_ticket_create, ws_ticket_redeem
from apps.accounts.services.tokens import (
    token_create,
    token_group,
    token_revoke,
    token_revoke_by_id,
    token_rotate,
    tokens_revoke_all,
    user_group,
)
from apps.accounts.services.users import roles_ensure, user_create

__all__ = [
    "DEMO_PASSWORD",
    "DemoLogin",
    "DemoUsersRefused",
    "TicketGrant",
    "demo_users_ensure",
    "demo_users_refusal",
    "is_loopback_host",
    "lockout_remaining_s",
    "roles_ensure",
    "token_create",
    "token_group",
    "token_revoke",
    "token_revoke_by_id",
    "token_rotate",
    "tokens_revoke_all",
    "user_create",
    "user_group",
    "ws_ticket_create",
    "ws_ticket_redeem",
]
