# Run a wampweb app under twistd:
#
#     WAMPWEB_ROUTER=ws://127.0.0.1:8080/ws twistd -ny examples/wampweb.tac
#
# twistd starts the application's services (the Components and the HTTP
# listener) and stops them on SIGTERM: requests in flight drain, sessions
# leave with GOODBYE.
import os

from autobahn.twisted.component import Component
from twisted.application.service import Application

from wampweb import WampWeb

router_url = os.environ.get("WAMPWEB_ROUTER", "ws://127.0.0.1:8080/ws")
listen = os.environ.get("WAMPWEB_LISTEN", "tcp:8090:interface=127.0.0.1")

application = Application("wampweb")
web = WampWeb(listen=listen)
web.add_component("default", Component(transports=router_url, realm="realm1"))
web.add_health_routes()
web.setServiceParent(application)


def _give_up(error):
    # A Component refused by the router (realm, authentication) will not come
    # back by retrying: stop, so the process supervisor sees a failed service.
    from twisted.internet import reactor

    reactor.stop()


web.failed.addBoth(_give_up)
