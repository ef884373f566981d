"""Twisted's echo server, the reference point weft is modelled on.

usage: python3 twisted_echo.py PORT   (listens on 127.0.0.1; TCP_NODELAY on)
"""
import sys

from twisted.internet import protocol, reactor


class Echo(protocol.Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.Factory):
    protocol = Echo


if __name__ == "__main__":
    reactor.listenTCP(int(sys.argv[1]), EchoFactory(), interface="127.0.0.1", backlog=1024)
    reactor.run()
