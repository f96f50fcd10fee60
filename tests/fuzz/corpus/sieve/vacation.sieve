require ["vacation"];
# rule:[Out of office]
if true
{
	vacation :days 7 :addresses ["me@example.com","alias@example.com"] :subject "Out of office" :from "me@example.com" text:
I am on holiday until Monday.
In urgent cases call the office.
.
;
}
