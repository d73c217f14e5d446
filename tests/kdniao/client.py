"""Drives the daemon's Kdniao dialect with a third-party Kdniao client (PyPI `kdn-sdk`)
and receives its pushes the way Kdniao's documentation describes them.

Usage: client.py DAEMON_URL RECEIVER_PORT EBUSINESS_ID APP_KEY NUMBER WAIT_SECONDS OTHER_NUMBER

OTHER_NUMBER is recognized (2002) besides NUMBER.

Prints one JSON object: the client's answers to 8008 (subscribe), 1002 and 8001 (queries)
and 2002 (recognition), and every push received, each with whether its DataSign
verified (Base64 of the lower-case hex MD5 of RequestData + AppKey, DataSign compared as
received, without URL decoding).
"""

import base64
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

from kdn.api.kdn import KDN

daemon, receiver_port, ebusiness_id, app_key, number, wait, other = sys.argv[1:8]
pushes = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode("utf-8"), keep_blank_values=True)
        data = form.get("RequestData", [""])[0]
        sign = form.get("DataSign", [""])[0]
        want = base64.b64encode(
            hashlib.md5((data + app_key).encode("utf-8")).hexdigest().encode("ascii")
        ).decode("ascii")
        pushes.append(
            {
                "request_type": form.get("RequestType", [""])[0],
                "ebusiness_id": form.get("EBusinessID", [""])[0],
                "data_type": form.get("DataType", [""])[0],
                "sign_ok": sign == want,
                "data": json.loads(data) if data else None,
            }
        )
        reply = json.dumps(
            {
                "EBusinessID": ebusiness_id,
                "UpdateTime": time.strftime("%Y-%m-%d %H:%M:%S"),
                "Success": True,
                "Reason": "",
            }
        ).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", int(receiver_port)), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()

kdn = KDN(ebusiness_id, app_key)
kdn.url = daemon
out = {}
out["subscribe"] = kdn.logistic.subscribe_express_routes(
    "cb-42", "SANDBOX", number,
    "张三", "北京市", "北京市", "朝阳区", "建国路 1 号",
    "李四", "广东省", "深圳市", "南山区", "科技园 2 号",
    receiver_mobile="13800000000", sender_mobile="13900000000", order_code="ORDER-1",
)
out["query_1002"] = kdn.query.get_express_routes("SANDBOX", number)
out["recognize"] = kdn.service.recognize_logistic_code(other)
deadline = time.time() + float(wait)
while time.time() < deadline and not pushes:
    time.sleep(0.2)
out["query_8001"] = kdn.logistic.get_express_routes("SANDBOX", number, "ORDER-1")
bad = KDN(ebusiness_id, app_key + "x")
bad.url = daemon
out["bad_sign"] = bad.query.get_express_routes("SANDBOX", number)
out["pushes"] = pushes
server.shutdown()
print(json.dumps(out, ensure_ascii=False))
