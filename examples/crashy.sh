#!/bin/sh
# crashy: a service that always fails. It prints a line, waits a second and
# exits with code 1, so Solo restarts it with a growing backoff until the
# restart intensity limit is reached and the service is marked failed.
#
#   solo deploy crashy --script examples/crashy.sh --interpreter sh \
#       --max-restarts 3 --within 30
#
# With the default backoff (100 ms, doubling, ±10% jitter) that is four runs:
# the first start and three restarts after about 0.1 s, 0.2 s and 0.4 s.
# The fourth exit finds 3 restarts within 30 s and the service fails.

echo "crashy: pid $$ (service ${SOLO_SERVICE:-?}, replica ${SOLO_REPLICA:-?}) starting"
sleep 1
echo "crashy: something went wrong, exiting with code 1" >&2
exit 1
