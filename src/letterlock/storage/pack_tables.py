"""The pack methods of a SQL cell store: digest packs and text packs are kept by the
same rules in tables of the same shape (see CellStore.put_digest_pack)."""

from __future__ import annotations

from letterlock.storage.models import DigestPack

PACK_TABLES = ("digest_packs", "text_packs")
"""Sealed read caches kept per UID window (dropped with any message they hold)."""


class PackTables:
    """get/put of each kind of pack, through the store's ``_get_packs``/``_put_pack``
    that take the table's name (one of PACK_TABLES)."""

    async def _get_packs(self, table: str, mailbox_id: int, first_uid: int,
                         last_uid: int) -> list[DigestPack]:
        raise NotImplementedError

    async def _put_pack(self, table: str, pack: DigestPack) -> bool:
        raise NotImplementedError

    async def get_digest_packs(self, mailbox_id: int, first_uid: int,
                               last_uid: int) -> list[DigestPack]:
        return await self._get_packs("digest_packs", mailbox_id, first_uid, last_uid)

    async def put_digest_pack(self, pack: DigestPack) -> bool:
        return await self._put_pack("digest_packs", pack)

    async def get_text_packs(self, mailbox_id: int, first_uid: int,
                             last_uid: int) -> list[DigestPack]:
        return await self._get_packs("text_packs", mailbox_id, first_uid, last_uid)

    async def put_text_pack(self, pack: DigestPack) -> bool:
        return await self._put_pack("text_packs", pack)
