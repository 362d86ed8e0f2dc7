"""The words on every page and in the confirmation email, in French and English.

One table per locale with the same keys (a test checks they match), and one
function choosing the locale: the subscriber's own, else the browser's
Accept-Language, else the site's.
"""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from drip.config import LOCALES

STRINGS: dict[str, dict[str, str]] = {
    "fr": {
        "subscribe_title": "S'inscrire",
        "subscribe_intro": "Reçois le parcours « {course} » par email, un article à la fois.",
        "email_label": "Adresse email",
        "name_label": "Prénom (facultatif)",
        "honeypot_label": "Laisse ce champ vide",
        "subscribe_button": "M'inscrire",
        "sent_title": "Vérifie ta boîte de réception",
        "sent_body": (
            "Si cette adresse peut recevoir nos emails, un message de confirmation vient de partir. "
            "Clique sur le lien qu'il contient pour commencer le parcours."
        ),
        "errors_heading": "Le formulaire contient des erreurs :",
        "err_email": "Cette adresse email n'est pas valide.",
        "err_course": "Ce parcours n'existe pas.",
        "err_list": "Cette lettre n'existe pas.",
        "err_locale": "Langue inconnue.",
        "err_timezone": "Fuseau horaire inconnu.",
        "err_too_long": "Ce champ est trop long.",
        "err_control": "Ce champ contient des caractères interdits.",
        "err_status": "Choix inconnu.",
        "did_you_mean": "voulais-tu dire « {name} » ?",
        "confirm_ask_title": "Confirme ton inscription",
        "confirm_ask_body": "Un clic pour recevoir le parcours « {course} » à l'adresse {email}.",
        "confirm_button": "Confirmer mon inscription",
        "origin_title": "Formulaire refusé",
        "origin_body": (
            "Ce formulaire a été envoyé depuis un autre site. Pour ta sécurité, rien n'a été fait : "
            "ouvre le lien depuis ton email ou la page de notre site."
        ),
        "busy_title": "Service occupé",
        "busy_body": "Nous n'avons pas pu enregistrer ta demande tout de suite. Réessaie dans quelques secondes.",
        "too_large_title": "Requête trop volumineuse",
        "too_large_body": "Ce formulaire contient trop de données.",
        "confirmed_title": "Inscription confirmée",
        "confirmed_body": "Merci ! Le premier email du parcours « {course} » arrive très bientôt.",
        "unsub_title": "Se désinscrire",
        "unsub_intro": "Tu reçois le parcours « {course} » à l'adresse {email}.",
        "unsub_intro_all": "Tu reçois nos emails à l'adresse {email}.",
        "unsub_leave_course": "Quitter ce parcours",
        "unsub_leave_all": "Ne plus rien recevoir",
        "unsub_intro_list": "Tu reçois la lettre « {list} » à l'adresse {email}.",
        "unsub_leave_list": "Quitter seulement cette lettre",
        "unsub_done_list": "Tu ne recevras plus la lettre « {list} ». Tes parcours continuent.",
        "unsub_done_title": "Désinscription enregistrée",
        "unsub_done_course": "Tu ne recevras plus le parcours « {course} ».",
        "unsub_done_all": "Tu ne recevras plus aucun email de notre part.",
        "prefs_link": "Gérer mes préférences",
        "prefs_title": "Tes préférences",
        "prefs_status": "Envois",
        "prefs_active": "Recevoir les emails",
        "prefs_paused": "Mettre en pause",
        "prefs_timezone": "Fuseau horaire",
        "prefs_locale": "Langue",
        "prefs_courses": "Tes parcours",
        "prefs_keep": "Rester inscrit(e) à « {course} »",
        "prefs_none": "Tu ne suis aucun parcours.",
        "prefs_lists": "Tes lettres",
        "prefs_keep_list": "Continuer à recevoir « {list} »",
        "prefs_save": "Enregistrer",
        "prefs_saved": "Tes préférences sont enregistrées.",
        "prefs_closed": "Cette adresse est désinscrite : rien ne lui sera envoyé.",
        "lang_fr": "Français",
        "lang_en": "English",
        "error_title": "Lien inutilisable",
        "token_invalid": "Ce lien est incomplet ou a été modifié. Copie-le en entier depuis l'email reçu.",
        "token_expired": "Ce lien a expiré. Inscris-toi à nouveau pour recevoir un nouveau lien.",
        "token_scope": "Ce lien ne correspond pas à cette page.",
        "token_gone": "Cette inscription n'existe plus.",
        "rate_title": "Trop de demandes",
        "rate_body": "Trop de demandes depuis ta connexion. Réessaie dans {seconds} secondes.",
        "not_found_title": "Page introuvable",
        "not_found_body": "Cette page n'existe pas.",
        "view_title": "Voir dans le navigateur",
        "email_subject": "Confirme ton inscription : {course}",
        "email_hello": "Bonjour {name},",
        "email_hello_anon": "Bonjour,",
        "email_body": "Tu as demandé à recevoir le parcours « {course} ». Confirme ton adresse :",
        "email_button": "Confirmer mon inscription",
        "email_ignore": "Si tu n'es pas à l'origine de cette demande, ignore ce message : rien ne te sera envoyé.",
        "email_why": "Tu reçois ce message parce que ton adresse a été saisie sur {site}.",
    },
    "en": {
        "subscribe_title": "Subscribe",
        "subscribe_intro": "Get the “{course}” course by email, one article at a time.",
        "email_label": "Email address",
        "name_label": "First name (optional)",
        "honeypot_label": "Leave this field empty",
        "subscribe_button": "Subscribe",
        "sent_title": "Check your inbox",
        "sent_body": (
            "If this address can receive our emails, a confirmation message is on its way. "
            "Click the link inside to start the course."
        ),
        "errors_heading": "The form has errors:",
        "err_email": "This email address is not valid.",
        "err_course": "This course does not exist.",
        "err_list": "This newsletter does not exist.",
        "err_locale": "Unknown language.",
        "err_timezone": "Unknown time zone.",
        "err_too_long": "This field is too long.",
        "err_control": "This field contains forbidden characters.",
        "err_status": "Unknown choice.",
        "did_you_mean": "did you mean “{name}”?",
        "confirm_ask_title": "Confirm your subscription",
        "confirm_ask_body": "One click to receive the “{course}” course at {email}.",
        "confirm_button": "Confirm my subscription",
        "origin_title": "Form refused",
        "origin_body": (
            "This form was sent from another site. For your safety nothing was done: "
            "open the link from your email or our site's page."
        ),
        "busy_title": "Service busy",
        "busy_body": "We could not record your request right away. Try again in a few seconds.",
        "too_large_title": "Request too large",
        "too_large_body": "This form holds too much data.",
        "confirmed_title": "Subscription confirmed",
        "confirmed_body": "Thank you! The first email of “{course}” is on its way.",
        "unsub_title": "Unsubscribe",
        "unsub_intro": "You receive the “{course}” course at {email}.",
        "unsub_intro_all": "You receive our emails at {email}.",
        "unsub_leave_course": "Leave this course",
        "unsub_leave_all": "Stop all emails",
        "unsub_intro_list": "You receive the “{list}” newsletter at {email}.",
        "unsub_leave_list": "Leave only this newsletter",
        "unsub_done_list": "You will not receive the “{list}” newsletter any more. Your courses go on.",
        "unsub_done_title": "You are unsubscribed",
        "unsub_done_course": "You will not receive the “{course}” course any more.",
        "unsub_done_all": "You will not receive any more email from us.",
        "prefs_link": "Manage my preferences",
        "prefs_title": "Your preferences",
        "prefs_status": "Sending",
        "prefs_active": "Receive emails",
        "prefs_paused": "Pause",
        "prefs_timezone": "Time zone",
        "prefs_locale": "Language",
        "prefs_courses": "Your courses",
        "prefs_keep": "Stay in “{course}”",
        "prefs_none": "You are not in any course.",
        "prefs_lists": "Your newsletters",
        "prefs_keep_list": "Keep getting “{list}”",
        "prefs_save": "Save",
        "prefs_saved": "Your preferences are saved.",
        "prefs_closed": "This address is unsubscribed: nothing will be sent to it.",
        "lang_fr": "Français",
        "lang_en": "English",
        "error_title": "This link cannot be used",
        "token_invalid": "This link is incomplete or was changed. Copy it whole from the email you received.",
        "token_expired": "This link has expired. Subscribe again to get a new one.",
        "token_scope": "This link is not meant for this page.",
        "token_gone": "This subscription no longer exists.",
        "rate_title": "Too many requests",
        "rate_body": "Too many requests from your connection. Try again in {seconds} seconds.",
        "not_found_title": "Page not found",
        "not_found_body": "This page does not exist.",
        "view_title": "View in browser",
        "email_subject": "Confirm your subscription: {course}",
        "email_hello": "Hello {name},",
        "email_hello_anon": "Hello,",
        "email_body": "You asked to receive the “{course}” course. Please confirm your address:",
        "email_button": "Confirm my subscription",
        "email_ignore": "If you did not ask for this, ignore this message: nothing will be sent to you.",
        "email_why": "You receive this message because your address was entered on {site}.",
    },
}


def strings(locale: str) -> Mapping[str, str]:
    """The table for ``locale``; English when the locale is not one drip speaks."""
    return STRINGS.get(locale, STRINGS["en"])


def negotiate(accept_language: str | None, *, preferred: str | None, default: str) -> str:
    """The page's locale: the subscriber's own, else the browser's best match, else the site's."""
    if preferred in LOCALES:
        return preferred
    if accept_language:
        accept = parse_accept_header(accept_language, LanguageAccept)
        match = accept.best_match(LOCALES)
        if match:
            return match
    return default if default in LOCALES else "en"
