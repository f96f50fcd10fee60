require ["date","relational","vacation"];
# rule:[Holiday]
if allof (currentdate :value "ge" "date" "2026-12-20", currentdate :value "le" "date" "2027-01-05")
{
	vacation :days 1 :subject "Holiday" "Back on 6 January.";
}
