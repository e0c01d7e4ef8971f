-- wrk script: POST getSshInfo to ssh.cgi, as sshfleet sends it (see docs/performance.md).
wrk.method = "POST"
wrk.body = '{"apiVersion":"1.1","context":"sshfleet","method":"getSshInfo"}'
wrk.headers["Content-Type"] = "application/json"
