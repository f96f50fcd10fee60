require ["fileinto", "reject", "envelope", "subaddress"];

/* Mailing lists */
if header :contains "List-Id" "<dev.lists.example.org>"
{
  fileinto "INBOX.Lists.dev";
}
elsif exists "X-Spam-Flag"
{
  if header :is "X-Spam-Flag" "YES"
  {
    fileinto "INBOX.Spam";
    stop;
  }
}
# Plus-addressed shop mail
if envelope :detail "to" "shop"
{
  fileinto "INBOX.Shopping";
}
