"""What the demo's people write about: subjects and one-line bodies per kind of relationship.

Detection reads headers only; a body line exists so the files look like mail to a human too.
"""

from __future__ import annotations

SUBJECTS = {
    "family": (
        "Sunday lunch", "Photos from the weekend", "Grandma's birthday", "Flights for Christmas",
        "Did you see this?", "That recipe", "Call tonight?", "Garden update", "Dad's new phone",
        "Plans for the summer", "Parcel arrived", "Happy anniversary!",
    ),
    "personal": (
        "Drinks Thursday?", "That book I mentioned", "Running club", "Hiking this weekend?",
        "Congrats!!", "Board games night", "Concert tickets", "Catching up", "Quick favour",
        "Podcast recommendation", "Birthday dinner", "Holiday photos", "New flat!",
        "Are you free Saturday?", "Article you'd like",
    ),
    "work": (
        "Roadmap draft", "Notes from today", "Proposal v2", "Budget review", "Hiring loop",
        "Incident follow-up", "Design doc feedback", "Sprint planning", "Customer escalation",
        "Offsite logistics", "Metrics dashboard", "1:1 agenda", "Release checklist",
        "Vendor contract", "Quarterly goals", "Interview feedback", "Migration plan",
    ),
    "client": (
        "Quarterly review", "Renewal terms", "Agenda for our review", "Follow-up from our call",
        "Invoice query", "Integration timeline", "Pilot results", "Statement of work",
    ),
    "network": (
        "Checking in", "Quick question", "Documents you asked for", "Catch-up?",
        "Boiler service", "Tax return paperwork", "Training plan", "Introduction",
    ),
    "stranger": (
        "Quick question", "Partnership opportunity", "15 minutes next week?",
        "Exciting role at a Series B startup", "Helping teams like yours", "Idea for you",
    ),
}  # fmt: skip

BODIES = {
    "family": (
        "Love you, speak soon x", "Call me when you get a minute.", "Pictures attached!",
        "Mum says hi.", "Let me know what works for you.",
    ),
    "personal": (
        "Sounds great, count me in.", "Ha, yes! Let's do it.", "Sorry for the slow reply.",
        "How have you been?", "Saturday works for me.", "Will bring snacks.",
    ),
    "work": (
        "Thanks, looks good to me.", "Comments inline, nothing blocking.",
        "Can we discuss in our 1:1?", "Updated the doc, please take a look.",
        "Adding this to Thursday's agenda.", "Agreed, let's go with option B.",
    ),
    "client": (
        "Thanks for your time today.", "Please find the agenda below.",
        "We'll confirm the numbers by Friday.", "Looking forward to the review.",
    ),
    "network": ("Thanks again.", "Let me know if you need anything else.", "All sorted."),
    "stranger": (
        "I came across your profile and thought you'd be a great fit.",
        "Just bumping this to the top of your inbox.",
        "Would you have 15 minutes next week?",
    ),
}  # fmt: skip


def theme(group: str, *, work: bool) -> str:
    """Which subject pool a contact's threads draw from."""
    if group in SUBJECTS:
        return group
    return "work" if work else "personal"
