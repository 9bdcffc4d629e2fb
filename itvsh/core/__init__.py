"""What every domain uses: money, audit trail, access control, database helpers, admin base."""
