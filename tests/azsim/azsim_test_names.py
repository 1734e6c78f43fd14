"""Names the storage-side azsim tests share (a uniquely named module: test folders each have a conftest)."""

TENANT = "a6a0ee7d-3927-5a58-9445-353d52ba4ca1"
MD_ACCOUNT = "mdstore"
CUSTOMER = "custacct"
