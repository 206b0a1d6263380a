"""Google connectors: Gmail (`gmail`) and Google Calendar (`google_calendar`) over their APIs.

Importing the package registers both kinds (the connectors package imports every subpackage).
"""

from keepwarm.connectors.google import calendar as calendar
from keepwarm.connectors.google import gmail as gmail
