"""A tiny threaded HTTP file server for Glance http-store locations.

Run as a script (``python3 fileserver.py --port P --dir D``). Serves the
files of one directory with HEAD and GET, Content-Length always set (the
glance_store http store needs it), and single byte ranges (``Range:
bytes=a-b``) for clients that resume. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import shutil

_RANGE = re.compile(r'^bytes=(\d*)-(\d*)$')


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def send_head(self):
        self._remaining = None
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            return super().send_head()
        try:
            f = open(path, 'rb')  # noqa: SIM115 (the handler closes it)
        except OSError:
            self.send_error(404, 'File not found')
            return None
        size = os.fstat(f.fileno()).st_size
        start, end = 0, size - 1
        match = _RANGE.match(self.headers.get('Range', '').strip())
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                if match.group(2):
                    end = min(int(match.group(2)), size - 1)
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size or start > end:
                f.close()
                self.send_response(416)
                self.send_header('Content-Range', 'bytes */%d' % size)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return None
            self.send_response(206)
            self.send_header(
                'Content-Range', 'bytes %d-%d/%d' % (start, end, size)
            )
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(end - start + 1))
        self.send_header('Accept-Ranges', 'bytes')
        self.send_header(
            'Last-Modified',
            self.date_time_string(os.fstat(f.fileno()).st_mtime),
        )
        self.end_headers()
        f.seek(start)
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = self._remaining
        if remaining is None:
            return shutil.copyfileobj(source, outputfile)
        while remaining > 0:
            chunk = source.read(min(remaining, 1024 * 1024))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--dir', required=True)
    parser.add_argument('--tag', help='owner tag, only for ps/stop')
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    def handler(*a, **kw):
        return Handler(*a, directory=args.dir, **kw)

    server = http.server.ThreadingHTTPServer(('127.0.0.1', args.port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == '__main__':
    main()
