require ["fileinto","imap4flags","copy","body","relational","comparator-i;ascii-numeric","reject"];
# rule:[Newsletter]
if anyof (header :contains "list-id" "news.example.com", header :contains "subject" "[news]")
{
	fileinto "Newsletter";
	stop;
}
# rule:[Boss]
if allof (address :is "from" "boss@example.com")
{
	addflag "\\Flagged";
	fileinto :copy "Important";
}
# rule:[Spam score]
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5"
{
	fileinto "Junk";
	stop;
}
# rule:[Invoices]
if body :text :contains ["invoice","rechnung"]
{
	fileinto "Invoices";
	redirect :copy "accounting@example.com";
}
# rule:[Huge]
if size :over 25M
{
	discard;
	stop;
}
