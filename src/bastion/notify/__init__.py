"""Messages that leave Bastion for people: phone codes (SMS providers), low-balance alerts
(email, signed webhooks).  These adapters know nothing of accounts or money."""
