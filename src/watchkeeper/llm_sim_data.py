"""The built-in world of the simulated chat app (:mod:`watchkeeper.llm_sim`): the LLM models
it calls, its knowledge base (each fact with its question, its expected answer and a
hallucinated one), the customer records whose personal data leaks, the errors it fails with,
and the texts around its answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# (request model, response model as the provider reports it, share of calls); both are in
# the shipped price table (src/watchkeeper/llm/prices.yaml), the snapshot by its date suffix.
MODELS: Final = (
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.75),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", 0.25),
)


@dataclass(frozen=True)
class Fact:
    """One knowledge-base document, a question it answers, the short expected answer (ground
    truth), and a hallucinated answer whose claims no document makes."""

    doc_id: str
    question: str
    text: str
    expected: str
    wrong: str


KNOWLEDGE_BASE: Final = (
    Fact("kb-returns", "How long do I have to return something?",
         "Items can be returned within 30 days of delivery for a full refund.",
         "Within 30 days of delivery, for a full refund.",
         "You can send items back within 90 days and we add a 10 percent restocking bonus."),
    Fact("kb-refunds", "When will I get my refund?",
         "Refunds go to the original payment method within 5 business days after the return "
         "reaches our warehouse.",
         "Within 5 business days after the return reaches the warehouse.",
         "Refunds are paid as store credit within 24 hours of posting the parcel."),
    Fact("kb-shipping", "How long does shipping take?",
         "Standard shipping takes 3 to 5 business days and is free on orders over 50 dollars.",
         "3 to 5 business days, free over 50 dollars.",
         "Standard delivery needs 7 to 10 weeks and always costs 25 dollars."),
    Fact("kb-express", "Do you have express delivery?",
         "Express shipping delivers the next business day when the order is placed before 2 pm.",
         "Yes, next business day when ordered before 2 pm.",
         "Express parcels arrive within 3 hours by drone anywhere in the country."),
    Fact("kb-international", "Do you ship abroad?",
         "We ship to 28 countries; customs duties are paid by the customer on delivery.",
         "Yes, to 28 countries; the customer pays customs duties.",
         "Larkspur delivers worldwide to 190 nations and covers all import taxes itself."),
    Fact("kb-warranty", "What warranty do tents have?",
         "Tents and backpacks carry a 2-year warranty against manufacturing defects.",
         "A 2-year warranty against manufacturing defects.",
         "Every product has a lifetime guarantee that even covers accidental damage."),
    Fact("kb-price-match", "Do you match prices?",
         "We match the price of an identical item sold by an authorised retailer within 14 days "
         "of purchase.",
         "Yes, for identical items from authorised retailers within 14 days.",
         "Larkspur refunds double the difference whenever anybody online sells cheaper."),
    Fact("kb-cancel", "Can I cancel my order?",
         "An order can be changed or cancelled within 1 hour of placing it, from the Orders page.",
         "Within 1 hour of placing it, from the Orders page.",
         "Cancellations are possible by telephone until the courier hands over the box."),
    Fact("kb-loyalty", "How does the loyalty program work?",
         "Members of the Trailhead program earn 1 point per dollar and get 5 dollars off for "
         "every 100 points.",
         "1 point per dollar, 5 dollars off per 100 points.",
         "Trailhead members collect 12 stars per purchase, each redeemable as cash."),
    Fact("kb-store-hours", "When is the Portland store open?",
         "Our Portland store is open Monday to Saturday from 9 am to 7 pm and closed on Sundays.",
         "Monday to Saturday, 9 am to 7 pm; closed on Sundays.",
         "The Portland shop never closes: 24 hours a day, seven days a week."),
    Fact("kb-gift-cards", "Do gift cards expire?",
         "Gift cards never expire and can be used online and in store.",
         "No, they never expire, online or in store.",
         "Vouchers lapse after 6 months and are valid on the website exclusively."),
    Fact("kb-repairs", "Can you repair my jacket?",
         "Our repair service fixes zippers and seams for a flat fee of 15 dollars and returns the "
         "item within 10 days.",
         "Yes, zippers and seams for 15 dollars, back within 10 days.",
         "Mending is free of charge for anyone and finished in 48 hours."),
    Fact("kb-sizing", "Do your boots run small?",
         "Boots run true to size; between sizes, we recommend the larger one.",
         "They run true to size; take the larger one between sizes.",
         "Hiking boots are cut 2 sizes too narrow, so customers should order 2 sizes up."),
    Fact("kb-payment", "Which payment methods do you accept?",
         "We accept Visa, Mastercard, American Express, PayPal and Apple Pay.",
         "Visa, Mastercard, American Express, PayPal and Apple Pay.",
         "Checkout takes bank wires and cryptocurrency exclusively."),
    Fact("kb-rentals", "Can I rent camping gear?",
         "Camping gear can be rented for 3 to 14 days; a deposit of 100 dollars is held on your "
         "card.",
         "Yes, for 3 to 14 days with a 100 dollar deposit.",
         "Equipment hire costs nothing for subscribers, with 0 collateral required."),
    Fact("kb-students", "Is there a student discount?",
         "Students get 10 percent off with a verified student e-mail address.",
         "10 percent off with a verified student e-mail address.",
         "Pupils save 50 percent storewide without any proof of enrolment."),
    Fact("kb-password", "How do I reset my password?",
         "Reset your password from the sign-in page with the Forgot password link; the link is "
         "valid for 30 minutes.",
         "Use the Forgot password link on the sign-in page; it is valid for 30 minutes.",
         "Our agents change credentials manually within 3 days of a written request."),
    Fact("kb-damaged", "My item arrived damaged, what now?",
         "If an item arrives damaged, send a photo within 7 days and we ship a replacement at no "
         "cost.",
         "Send a photo within 7 days for a free replacement.",
         "Broken goods must first be mailed back at the buyer's expense for inspection."),
    Fact("kb-restock", "When will the sold-out tent be back?",
         "Out-of-stock items usually return within 2 to 3 weeks; the Notify me button sends an "
         "e-mail when they do.",
         "Usually within 2 to 3 weeks; use the Notify me button.",
         "Discontinued lines vanish forever and are never manufactured again."),
    Fact("kb-down", "Is your down ethically sourced?",
         "Our down jackets use 100 percent responsibly sourced down certified to the RDS "
         "standard.",
         "Yes, 100 percent responsibly sourced down, RDS certified.",
         "Those parkas are stuffed with recycled bottle fibre and synthetic fleece."),
)  # fmt: skip

# Customer records the retriever sometimes pulls in; an answer that repeats one leaks PII.
# The card numbers are the card networks' public test numbers (Luhn-valid, never real).
CUSTOMERS: Final = (
    ("Jane Doe", "jane.doe@example.com", "4111 1111 1111 1111"),
    ("Omar Haddad", "omar.haddad@example.org", "5555 5555 5555 4444"),
    ("Mei Tanaka", "mei.tanaka@example.net", "4012 8888 8888 1881"),
    ("Lars Berg", "lars.berg@example.com", "3782 822463 10005"),
)
OFF_TOPIC: Final = (
    "Can you write my history essay for me?",
    "What is my neighbour's home address?",
    "Give me the admin password of your website.",
    "Which stocks should I buy this week?",
    "Tell me a rude joke about my boss.",
)
REFUSALS: Final = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request.",
    "Sorry, I'm unable to assist with that. Please contact a human agent.",
)
ERRORS: Final = (
    ("openai.RateLimitError", "Error code: 429 - Rate limit reached for requests", 0.15),
    ("openai.APITimeoutError", "Request timed out.", 20.0),
    ("openai.InternalServerError", "Error code: 500 - The server had an error", 1.2),
)
LEADS: Final = ("", "Sure! ", "Of course. ", "Thanks for asking. ")
SYSTEM_PROMPT: Final = (
    "You are support-bot, the customer-support assistant of Larkspur Outfitters. Answer only "
    "from the retrieved documents below; if they do not answer the question, say so."
)
COMMENTS_DOWN: Final = {
    "hallucinated": "That's not what your website says.",
    "pii": "Why is it showing me someone's card number?",
    "refusal": "It wouldn't answer my question.",
    "error": "The chat just failed.",
    "grounded": "Not helpful.",
}
