"""Hand-written replies to the ABCD demo policies, grounded or not, for the grounding check.

Each case names the article whose passages the reply is checked against (by title, as
``apps.chat.services.demo`` builds them). Grounded replies say only what the article says, in
other words, as a small chat model would paraphrase it; ungrounded ones are off topic, invent
a fact or a number, refuse, or say nothing. The thresholds in ``services.grounding`` were
chosen on these with the bundled MiniLM; ``tests/chat/test_grounding.py`` checks them.
"""

from __future__ import annotations

SIZE = "Product Defect: Return Due to Size"
SHIPPING_COST = "Shipping Issue: Shipping Cost"
PASSWORD = "Account Access: Recover Password"
PROMO = "Purchase Dispute: Promo Code Invalid"
REFUND = "Product Defect: Initiate Refund"
UPDATE_REFUND = "Product Defect: Update Refund"
TWO_FACTOR = "Account Access: Reset Two-Factor Auth"
ADDRESS = "Manage Account: Manage Change Address"
CANCEL = "Order Issue: Manage Cancel"
EXTENSION = "Subscription Inquiry: Manage Extension"
TIMING = "Storewide Query: Timing FAQ"
JACKET = "Single-Item Query: Jacket FAQ"
DELIVERY = "Order Issue: Status Delivery Time"

GROUNDED: list[tuple[str, str]] = [
    (SIZE, "Gold members get unlimited returns."),
    (
        SIZE,
        "As a silver member, you can return an item bought within the last 6 months. A receipt or "
        "the original packaging also works.",
    ),
    (SIZE, "Bronze members can return a purchase made within the last 90 days."),
    (SIZE, "Guest members can return items bought in the last 30 days, or if they have a receipt."),
    (SHIPPING_COST, "Standard shipping is $8.00. If your order is still in transit, we can waive the shipping fee."),
    (
        SHIPPING_COST,
        "If your package is out for delivery or already delivered, we can give you part of the shipping fee back.",
    ),
    (
        PASSWORD,
        "We cannot get your old password, but we can generate a new one for you. You will need "
        "your PIN number or the answer to your security question.",
    ),
    (PROMO, "Promotions usually only last 7 days, so a code issued a long time ago may not work."),
    (PROMO, "Gold, Silver and Bronze members all qualify for a new promo code, even if the old code is not valid."),
    (
        REFUND,
        "Your refund can be a gift card, added value on your account, a paper check, or a refund to your credit card.",
    ),
    (REFUND, "If you do not know the amount, the default refund amount is $50."),
    (UPDATE_REFUND, "The total refund is the amount of your previous refund plus your current one."),
    (
        TWO_FACTOR,
        "We will send the reset code to the email address saved on file. We will also send you a "
        "link about security best practices.",
    ),
    (
        ADDRESS,
        "To change your address, please give us your current street address. You also need to "
        "verify your identity with 3 of 7 items, such as your zip code or PIN number.",
    ),
    (
        CANCEL,
        "If your order has only been received, we can offer a refund right away and remove the item from your order.",
    ),
    (EXTENSION, "Gold members can always get an extension. Silver members get one if they are only 1 day late."),
]

UNGROUNDED: list[tuple[str, str]] = [
    (SIZE, "I'm unable to provide assistance with refunds."),
    (SIZE, "Silver members can return items within 12 months."),
    (SIZE, "Gold members get free overnight shipping on every order."),
    (SIZE, "Bronze members must pay a $20 restocking fee for every return."),
    (SHIPPING_COST, "Standard shipping costs $15 and takes two weeks."),
    (SHIPPING_COST, "We ship to over 40 countries worldwide with our partner airline."),
    (PASSWORD, "Your password is stored in plain text, so I will email it to you right away."),
    (PASSWORD, "I am an AI language model and cannot access your account."),
    (REFUND, "We do not give refunds on sale items under any circumstances."),
    (TIMING, "Our local store is open from 9am to 5pm on weekdays."),
    (JACKET, "This jacket is made of 100% organic cotton and is machine washable."),
    (DELIVERY, "Your order will arrive tomorrow morning by drone."),
    (TWO_FACTOR, "To reset two-factor authentication, visit our office in Berlin with your passport."),
    (EXTENSION, "The capital of France is Paris, and it is a lovely city to visit in spring."),
    (ADDRESS, ""),
    (CANCEL, "Sure! Happy to help."),
]
