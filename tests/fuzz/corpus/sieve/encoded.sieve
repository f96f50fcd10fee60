require ["encoded-character", "relational", "comparator-i;ascii-numeric", "imap4flags"];
if header :count "ge" :comparator "i;ascii-numeric" "received" "${hex:33}" { setflag "\\Seen"; }
if hasflag :matches "*" { keep :flags "a"; }
