"""DeepSynth's web service: the Flask app factory and one blueprint per area.

Views parse the request into the library's configuration objects, call a library function
and return JSON. Long work goes to the job manager; nothing here renders or trains itself.
"""

from web_ui.app import create_app

__all__ = ["create_app"]
