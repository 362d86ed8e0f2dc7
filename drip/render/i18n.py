"""The words around the content of an email, in each language a course can use.

A course is written in one locale; everything drip adds to it (greeting, button
labels, footer, the reason the reader gets the email) must speak the same
language. Unknown locales fall back to English rather than failing a send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from drip.content.duration import format_minutes

FALLBACK = "en"

_FR: dict[str, str] = {
    "greeting": "Bonjour {name},",
    "name_fallback": "à toi",
    "email_of": "Email {number} sur {total}",
    "day": "Jour {day}",
    "read_article": "Lire l'article",
    "read_page": "Lire la page complète",
    "learn_more": "Découvrir",
    "reading_time": "{minutes} de lecture",
    "article_label": "À lire",
    "welcome_title": "Bienvenue dans «\u00a0{course}\u00a0»",
    "welcome_intro": "Merci de ton inscription. Voici comment va se dérouler ce parcours.",
    "welcome_plan": "Au programme",
    "welcome_first": "Premier article dans ta boîte mail : jour {day}.",
    "welcome_cadence": "Tu recevras un email tous les {days} jours environ, avec un article à lire à ton rythme.",
    "article_intro": "Aujourd'hui, un article pour avancer dans le parcours «\u00a0{course}\u00a0».",
    "article_notes": "À retenir en lisant :",
    "section_intro": "Une sélection d'articles sur ce thème :",
    "closing_title": "Pour aller plus loin",
    "closing_intro": "C'est le dernier email du parcours «\u00a0{course}\u00a0». Merci de l'avoir suivi jusqu'ici.",
    "closing_deeper": "La ressource pour approfondir",
    "closing_others": "D'autres sujets à explorer",
    "sign_off": "À bientôt,",
    "reply_invite": "Une question, une remarque ? Réponds simplement à cet email.",
    "why": "Tu reçois cet email parce que tu t'es inscrit(e) au parcours «\u00a0{course}\u00a0» sur {site}.",
    "unsubscribe": "Se désinscrire",
    "preferences": "Gérer mes préférences",
    "view_in_browser": "Voir dans le navigateur",
    "link_label": "Lien",
    "colon": "\u00a0:",
    "digest_subject_1": "{title}\u00a0: 1 nouvel article",
    "digest_subject_n": "{title}\u00a0: {count} nouveaux articles",
    "digest_intro_1": "Voici le nouvel article publié depuis la dernière lettre.",
    "digest_intro_n": "Voici les {count} nouveaux articles publiés depuis la dernière lettre.",
    "why_list": "Tu reçois cet email parce que tu t'es inscrit(e) à «\u00a0{list}\u00a0» sur {site}.",
    "archive_note": "{link} pour recevoir les prochains numéros par email.",
    "archive_subscribe_to": "Abonne-toi à «\u00a0{list}\u00a0»",
    "archive_subscribe": "S'abonner",
    "archive_feed": "Flux Atom",
    "archive_none": "Aucun numéro pour l'instant.",
}

_EN: dict[str, str] = {
    "greeting": "Hi {name},",
    "name_fallback": "there",
    "email_of": "Email {number} of {total}",
    "day": "Day {day}",
    "read_article": "Read the article",
    "read_page": "Read the full page",
    "learn_more": "Learn more",
    "reading_time": "{minutes} read",
    "article_label": "Reading",
    "welcome_title": "Welcome to “{course}”",
    "welcome_intro": "Thank you for signing up. Here is how this course works.",
    "welcome_plan": "What's coming",
    "welcome_first": "First article in your inbox: day {day}.",
    "welcome_cadence": "You will get an email about every {days} days, with an article to read at your own pace.",
    "article_intro": "Today, one article to move forward in “{course}”.",
    "article_notes": "Keep in mind while reading:",
    "section_intro": "A selection of articles on this topic:",
    "closing_title": "Going further",
    "closing_intro": "This is the last email of “{course}”. Thank you for following it this far.",
    "closing_deeper": "The resource to go deeper",
    "closing_others": "Other topics to explore",
    "sign_off": "See you soon,",
    "reply_invite": "A question, a remark? Just reply to this email.",
    "why": "You are receiving this email because you signed up for the course “{course}” on {site}.",
    "unsubscribe": "Unsubscribe",
    "preferences": "Manage preferences",
    "view_in_browser": "View in browser",
    "link_label": "Link",
    "colon": ":",
    "digest_subject_1": "{title}: 1 new article",
    "digest_subject_n": "{title}: {count} new articles",
    "digest_intro_1": "Here is the new article published since the last issue.",
    "digest_intro_n": "Here are the {count} new articles published since the last issue.",
    "why_list": "You are receiving this email because you signed up for “{list}” on {site}.",
    "archive_note": "{link} to get the next issues by email.",
    "archive_subscribe_to": "Subscribe to {list}",
    "archive_subscribe": "Subscribe",
    "archive_feed": "Atom feed",
    "archive_none": "No issue yet.",
}

CATALOGUES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"fr": MappingProxyType(_FR), "en": MappingProxyType(_EN)}
)


def pick_locale(locale: str | None) -> str:
    """The catalogue to use for ``locale``: exact, then language only ("fr-CA" → "fr"), then English."""
    if not locale:
        return FALLBACK
    wanted = locale.replace("_", "-").lower()
    if wanted in CATALOGUES:
        return wanted
    language = wanted.split("-", 1)[0]
    return language if language in CATALOGUES else FALLBACK


@dataclass(frozen=True)
class Messages:
    """The strings of one locale, callable from templates as ``t("key", name=…)``."""

    locale: str

    def __call__(self, key: str, **fields: object) -> str:
        """A ``minutes`` field is shown as a duration in this locale ("10 min", "1 h 30")."""
        text = CATALOGUES[self.locale].get(key)
        if text is None:
            text = CATALOGUES[FALLBACK][key]  # a KeyError here is a template bug, reported with its line
        minutes = fields.get("minutes")
        if isinstance(minutes, int) and not isinstance(minutes, bool):
            fields["minutes"] = format_minutes(minutes, self.locale)
        return text.format(**fields) if fields else text


def messages(locale: str | None) -> Messages:
    return Messages(pick_locale(locale))
